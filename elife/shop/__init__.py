"""What a customer buys: numbers, prices, the catalogue, customers and their orders."""
