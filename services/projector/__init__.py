"""The projection runner and the appliers that write each read model."""
