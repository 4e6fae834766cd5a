"""The method's stages as plain functions: test, source pre-training, adaptation."""
