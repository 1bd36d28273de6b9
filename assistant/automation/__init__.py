"""Automation services: the scheduler (APScheduler behind an injectable clock), timers,
reminders and schedules, sun times, lists and notices. Skills and rules import these; they
import only ``assistant.messages``, ``assistant.registry``, each other and libraries."""
