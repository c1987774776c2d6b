"""Parts of the SDEdit GIMP 3 plug-in: the procedure's arguments, the GIMP pixel glue, the job runner.

Only ``pixels`` and ``edit`` import GIMP (through gi); ``options`` and ``watchdog`` are plain Python so they
can be tested without GIMP.
"""
