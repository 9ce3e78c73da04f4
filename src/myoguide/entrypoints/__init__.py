"""The entry points: the only modules that import the composition root (`myoguide.bootstrap`)."""
