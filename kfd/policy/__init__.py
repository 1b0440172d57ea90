"""Permission decisions: pure rules (`engine`), path facts (`paths`)."""
