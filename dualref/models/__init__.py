"""Re-ID models."""
