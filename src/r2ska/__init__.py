"""Road to SKA course book helpers: data, models, latent-space tools and widgets."""

__version__ = "0.1.0"
