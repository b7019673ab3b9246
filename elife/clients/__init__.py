"""One module per external party; each is the only place that knows its wire format."""
