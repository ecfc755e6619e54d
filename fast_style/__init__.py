"""fast_style: fast neural style transfer (Johnson et al. 2016) with the Gatys baseline built in."""

__version__ = "0.1.0"
