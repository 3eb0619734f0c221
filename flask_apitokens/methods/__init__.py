"""One module per way of getting a token. Each owns its input and output shape
and exposes ``register(blueprint, settings)``, which adds its routes when its
switch is on; none writes to the token table itself (they call TokenService)."""
