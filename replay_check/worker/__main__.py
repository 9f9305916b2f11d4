from replay_check.worker.process import main

main()
