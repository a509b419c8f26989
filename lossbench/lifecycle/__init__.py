"""The run's lifecycle: the checks before a run starts (``precheck``, ``validation``), the task function
and its phases (``run``, ``builders``), packed sweeps (``packs``), the sweep's callbacks and folder names
(``callbacks``, ``naming``), the run folder's lock (``run_folder``), the closing table
(``summary_table``) and the ``lossbench evaluate`` command (``evaluate_command``).

Stop requests (signals, interruption) live one layer down, in ``lossbench.core.signals``: the trainer
polls them too.
"""
