"""The ceiling: a bare Flask app doing one indexed SELECT (a product by primary key) on
the same stack as the service -- Flask, SQLAlchemy's pool with the service's own engine
options, PyMySQL, the same database -- served by `gunicorn bench.ceiling:app -c
gunicorn.conf.py`, so the same workers and settings. Benchmark-only: the service never
imports it.

Nothing else happens per request: no settings object, no logging, no auth, no ORM.
"""
import sqlalchemy as sa
from flask import Flask, jsonify

from elife.config import load_settings
from elife.database import engine_options

_s = load_settings()
engine = sa.create_engine(_s.DATABASE_URL, **engine_options(_s.DATABASE_URL, _s.DB_CONNECT_TIMEOUT,
                                                            _s.DB_POOL_RECYCLE))
_SELECT = sa.text("SELECT id, product_code, product_operator, recharge_type, name, price_tg "
                  "FROM products WHERE id = :id")

app = Flask(__name__)


@app.get("/products/<int:product_id>")
def product(product_id):
    with engine.connect() as c:
        row = c.execute(_SELECT, {"id": product_id}).mappings().one_or_none()
    if row is None:
        return jsonify({"error": {"code": "not_found", "message": "no such product"}}), 404
    return jsonify(dict(row))
