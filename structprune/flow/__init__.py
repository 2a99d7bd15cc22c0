"""Channel flow: atoms, op rules and the pass that applies them."""
