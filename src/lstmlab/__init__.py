"""lstmlab."""
