"""WSGI entry point: `gunicorn run:app`, `flask --app run.py …`."""
import gc

from app import create_app

app = create_app()
# What the app factory built (views, models, templates, translations: some 300,000 objects)
# lives as long as the process. Freezing it keeps every full garbage collection from walking
# it again: one otherwise paused a request for 200 ms on CI's machine.
gc.freeze()

if __name__ == "__main__":
    app.run(debug=False)
