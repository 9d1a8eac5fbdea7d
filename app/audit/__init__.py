"""Privacy audits on arrays, beside the accountant's bound: ``membership`` (empirical leakage of one model) and
``canaries`` (the one-run epsilon lower bound of Steinke, Nasr and Jagielski 2023). Pure numpy/scipy/scikit-learn;
the Keras glue that trains with canaries and computes the logits lives in ``app.training.audit``. Submodules are
imported where used, not here.
"""
