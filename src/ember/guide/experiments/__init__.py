"""The guide's experiments, one module per part of the guide: ``part1`` (questions 1-17),
``part2`` (18-41), ``part3`` (42-52), ``part4`` (53-75). Each module registers its experiments
with ``@ember.guide.registry.experiment`` when imported; ``ember.guide.registry.load_all``
imports them. Shared building blocks live in ``common``. See ``ember.guide`` for the rules an
experiment keeps.
"""
