"""What a customer buys: numbers, prices, the catalogue, orders and the limits on them."""
