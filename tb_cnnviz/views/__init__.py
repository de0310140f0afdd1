"""One module per view family: from the model, its inputs and options to summaries written through the sink.

Each ``log_*`` function here is what a :class:`~tb_cnnviz.CNNViz` method delegates to; the facade adds the
state a training run keeps (probe images, the sink, the dead-filter window) and the guard that keeps a failing
call from stopping training. The tab reads each view's summaries through :mod:`tb_cnnviz.plugin`.
"""
