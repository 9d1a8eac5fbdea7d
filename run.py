"""Development server: python run.py serves on 127.0.0.1:5000 (HOST and PORT override)."""

import os

from app import create_app

if __name__ == "__main__":
    create_app().run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")),
                     threaded=True)
