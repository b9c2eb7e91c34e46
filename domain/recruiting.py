"""Use cases of the Public API: jobs and candidates pushed by an organization's ATS."""

from __future__ import annotations


class RecruitingUseCases:
    """Mixed into DeveloperTools: jobs and candidates."""
