"""Helpers the test areas share: waiting for a condition, stopping a process we started."""
