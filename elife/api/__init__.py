"""Thin blueprints: parse and check the request, call a domain module, shape the answer."""
from . import admin, auth, health, orders, payment

# Registered by create_app in this order. Kept here, so that importing the blueprints
# never binds `elife.orders` (the domain module) to `elife.api.orders`.
BLUEPRINTS = (health.bp, auth.bp, orders.bp, payment.bp, admin.bp)
