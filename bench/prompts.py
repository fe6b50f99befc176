"""Prompts the load and overhead benchmarks send (formatted with a request number)."""

PROMPTS = [
    "What is {i} * 17? Show the multiplication step by step.",
    "Write a Python function that reverses a linked list (variant {i}).",
    "Summarise the causes of the French Revolution in {i} words or fewer.",
    "Write a short poem about the sea and the number {i}.",
    "Explain the difference between TCP and UDP, example {i}.",
    "Prove that there are infinitely many primes, attempt {i}.",
]
