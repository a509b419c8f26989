"""The shared foundation every layer may import: errors, registries, files, stop requests, the sink
contract, and the torch-free tables the config checks read. Nothing here imports the rest of lossbench.
"""
