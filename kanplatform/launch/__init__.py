"""kanplatform.launch."""
