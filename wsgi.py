"""gunicorn wsgi:app"""
from elife import create_app

app = create_app()
