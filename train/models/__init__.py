"""The networks: the spatiotemporal DiT (dit, attention), EMA weights (ema), frozen text
encoders (text)."""
