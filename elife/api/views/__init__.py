"""What our JSON looks like: one module per blueprint turns the domain's rows, models and
dataclasses into the camelCase answers. The CLI's --json prints through them too."""
