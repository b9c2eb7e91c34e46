"""Helpers shared by the test suites (real servers, no network mocks)."""
