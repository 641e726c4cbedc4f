"""Domain logic as plain functions shared by views, CLI commands and actors."""
