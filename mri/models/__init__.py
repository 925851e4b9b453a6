"""Backbone registry, plain nn.Modules and LightningModules."""
