"""Ready-made scenarios for ``sagafsm simulate``: each module has a ``scenario()`` function."""
