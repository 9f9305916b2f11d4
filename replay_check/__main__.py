from replay_check.cli import main

main()
