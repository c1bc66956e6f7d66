"""kanplatform.scaling."""
