"""After checkout: the payment, the recharge, the refund, the sweep that finishes what
was left, and the audit trail. No module here knows HTTP."""
