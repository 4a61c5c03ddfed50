"""Application commands over finished or running builds."""
