"""One module per view, named by its stem: from the model, its inputs and options to records for the sink.

``registry.py`` lists the views (torch-free: the plugin reads it through :mod:`tb_cnnviz.metadata`); each
``<stem>.py`` ends with its ``VIEW`` declaration (:mod:`.declaration`): its logging functions, mirrored by the
documented :class:`~tb_cnnviz.CNNViz` methods that hand them their arguments by name, and how ``tb-cnnviz
analyze`` logs it. Modules without a ``VIEW`` (``map_checks.py``, ``performance_report.py``) are helpers of one
view. The facade adds the guard that keeps a failing call from stopping training.
"""
