"""Running a simulator adapter in another interpreter: the worker process, its proxy and the frame transport.

The main process keeps decoding, metrics, Rerun and reports; a `ProxyAdapter` forwards every adapter
protocol call (method name + picklable arguments) to a worker started with a stack's Python, and frames
come back through shared memory (`replay_check.worker.shm`). Nothing here imports a simulator.
"""
