"""gunicorn settings for the image and `make serve`.

One worker process, several threads: runs (their queue, records and cancel flags) live in this process's memory, so a
second worker would not see the runs the first one started. Threads serve the page and the polls while a real run
trains in the job manager's background thread.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '7860')}"
workers = 1
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
timeout = 120
accesslog = "-"
