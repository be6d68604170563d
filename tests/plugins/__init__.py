"""A test plug-in package: one new strategy, one new verifier needing a ``judge`` role and one
new task (a YAML spec plus its loader), each in one new file, registered by importing the
module (``import plugins.first_of_pool``) with no edit anywhere in ``ttc_eval``."""
