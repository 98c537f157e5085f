"""Ready applications built on serval (``serval.apps.many_models``)."""
