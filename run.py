"""Development server: python run.py serves on 127.0.0.1:5000 (HOST and PORT override).

TensorFlow warms up in a background thread after start (WARM_UP=0 turns that off), so the first real run starts at once.
"""

import os

from app import create_app

if __name__ == "__main__":
    os.environ.setdefault("WARM_UP", "1")
    create_app().run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")),
                     threaded=True)
