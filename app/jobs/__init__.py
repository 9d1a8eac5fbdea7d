"""Runs: the bounded job manager (``manager``), the modes it runs (``runners``, one registry) and the run service the
API calls (``service``: plan, submit, summarize)."""
