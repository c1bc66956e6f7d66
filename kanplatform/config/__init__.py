"""kanplatform.config."""
