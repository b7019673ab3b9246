"""The customer hears back: WeChat subscribe messages when a top-up lands, fails and is
refunded, or is refunded (docs/design.md, "Subscribe messages")."""
