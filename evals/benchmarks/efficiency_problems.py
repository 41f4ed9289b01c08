"""Problems with efficiency headroom: a naive solution is correct but measurably slower.

Each problem has a HumanEval-style prompt (signature and docstring), a good reference
solution, a naive one (quadratic instead of linear, recomputation instead of memoisation,
list instead of set lookups, ...), pytest tests, and a workload that calls the function on a
sizeable input (what the execution reward times; inputs it builds at module level are not
timed). Where the naive version is exponential, a test's input is large enough that it runs
into the sandbox's time limit, so the tests time-box it. `tests/test_rl.py` checks that every
reference passes, every naive version passes or is cut off, and the naive version is slower
on the workload.

Written for this project (Apache-2.0); sizes are set so a reference workload call takes
milliseconds on a laptop core.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem: prompt, entry point, reference and naive solutions, tests and workload."""

    name: str
    prompt: str
    reference: str
    naive: str
    tests: str
    workload: str

    @property
    def entry_point(self) -> str:
        """The function the prompt asks for."""
        return self.prompt.split("def ", 1)[1].split("(", 1)[0]


PROBLEMS: list[Problem] = [
    Problem(
        "has_duplicates",
        prompt='''\
def has_duplicates(items: list) -> bool:
    """Return True if any value occurs more than once in items."""
''',
        reference="""\
def has_duplicates(items: list) -> bool:
    return len(set(items)) != len(items)
""",
        naive="""\
def has_duplicates(items: list) -> bool:
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if items[i] == items[j]:
                return True
    return False
""",
        tests="""\
def test_small():
    assert has_duplicates([1, 2, 3, 1])
    assert not has_duplicates([1, 2, 3])
    assert not has_duplicates([])

def test_large():
    assert not has_duplicates(list(range(3000)))
""",
        workload="""\
def workload():
    has_duplicates(list(range(2000)))
""",
    ),
    Problem(
        "fib",
        prompt='''\
def fib(n: int) -> int:
    """Return the n-th Fibonacci number, with fib(0) = 0 and fib(1) = 1."""
''',
        reference="""\
def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
""",
        naive="""\
def fib(n: int) -> int:
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)
""",
        tests="""\
def test_small():
    assert [fib(i) for i in range(8)] == [0, 1, 1, 2, 3, 5, 8, 13]

def test_large():
    assert fib(40) == 102334155
""",
        workload="""\
def workload():
    fib(22)
""",
    ),
    Problem(
        "count_common",
        prompt='''\
def count_common(a: list, b: list) -> int:
    """Return how many elements of a also occur in b."""
''',
        reference="""\
def count_common(a: list, b: list) -> int:
    seen = set(b)
    return sum(1 for x in a if x in seen)
""",
        naive="""\
def count_common(a: list, b: list) -> int:
    return sum(1 for x in a if x in b)
""",
        tests="""\
def test_small():
    assert count_common([1, 2, 3, 2], [2, 3]) == 3
    assert count_common([], [1]) == 0

def test_large():
    assert count_common(list(range(2000)), list(range(1000, 3000))) == 1000
""",
        workload="""\
def workload():
    count_common(list(range(2000)), list(range(1000, 3000)))
""",
    ),
    Problem(
        "prefix_sums",
        prompt='''\
def prefix_sums(values: list) -> list:
    """Return the running totals of values: element i is values[0] + ... + values[i]."""
''',
        reference="""\
def prefix_sums(values: list) -> list:
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out
""",
        naive="""\
def prefix_sums(values: list) -> list:
    return [sum(values[: i + 1]) for i in range(len(values))]
""",
        tests="""\
def test_small():
    assert prefix_sums([1, 2, 3]) == [1, 3, 6]
    assert prefix_sums([]) == []

def test_large():
    assert prefix_sums([1] * 3000)[-1] == 3000
""",
        workload="""\
def workload():
    prefix_sums(list(range(3000)))
""",
    ),
    Problem(
        "count_primes",
        prompt='''\
def count_primes(n: int) -> int:
    """Return how many prime numbers are smaller than n."""
''',
        reference="""\
def count_primes(n: int) -> int:
    if n < 3:
        return 0
    sieve = bytearray([1]) * n
    sieve[0] = sieve[1] = 0
    for i in range(2, int(n ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(range(i * i, n, i)))
    return sum(sieve)
""",
        naive="""\
def count_primes(n: int) -> int:
    count = 0
    for k in range(2, n):
        if all(k % d for d in range(2, k)):
            count += 1
    return count
""",
        tests="""\
def test_small():
    assert count_primes(10) == 4
    assert count_primes(2) == 0
    assert count_primes(3) == 1

def test_large():
    assert count_primes(3000) == 430
""",
        workload="""\
def workload():
    count_primes(3000)
""",
    ),
    Problem(
        "most_frequent",
        prompt='''\
def most_frequent(items: list):
    """Return the value that occurs most often in items (the first such value on ties)."""
''',
        reference="""\
def most_frequent(items: list):
    counts = {}
    for x in items:
        counts[x] = counts.get(x, 0) + 1
    best = max(counts.values())
    return next(x for x in items if counts[x] == best)
""",
        naive="""\
def most_frequent(items: list):
    return max(items, key=lambda x: (items.count(x), -items.index(x)))
""",
        tests="""\
def test_small():
    assert most_frequent([3, 1, 3, 2, 1]) == 3
    assert most_frequent(['a']) == 'a'

def test_large():
    assert most_frequent([i % 50 for i in range(2000)]) == 0
""",
        workload="""\
def workload():
    most_frequent([i % 97 for i in range(2000)])
""",
    ),
    Problem(
        "two_sum_exists",
        prompt='''\
def two_sum_exists(values: list, target: int) -> bool:
    """Return True if two different positions of values hold numbers that add up to target."""
''',
        reference="""\
def two_sum_exists(values: list, target: int) -> bool:
    seen = set()
    for v in values:
        if target - v in seen:
            return True
        seen.add(v)
    return False
""",
        naive="""\
def two_sum_exists(values: list, target: int) -> bool:
    n = len(values)
    return any(values[i] + values[j] == target for i in range(n) for j in range(i + 1, n))
""",
        tests="""\
def test_small():
    assert two_sum_exists([1, 4, 6], 10)
    assert not two_sum_exists([5], 10)
    assert two_sum_exists([5, 5], 10)

def test_large():
    assert not two_sum_exists(list(range(0, 3000, 2)), 1)
""",
        workload="""\
def workload():
    two_sum_exists(list(range(0, 3000, 2)), 1)
""",
    ),
    Problem(
        "unique_in_order",
        prompt='''\
def unique_in_order(items: list) -> list:
    """Return the distinct values of items, each once, in order of first occurrence."""
''',
        reference="""\
def unique_in_order(items: list) -> list:
    return list(dict.fromkeys(items))
""",
        naive="""\
def unique_in_order(items: list) -> list:
    out = []
    for x in items:
        if x not in out:
            out.append(x)
    return out
""",
        tests="""\
def test_small():
    assert unique_in_order([3, 1, 3, 2, 1]) == [3, 1, 2]
    assert unique_in_order([]) == []

def test_large():
    assert unique_in_order(list(range(2000)) * 2) == list(range(2000))
""",
        workload="""\
def workload():
    unique_in_order(list(range(1500)) * 2)
""",
    ),
    Problem(
        "climb_stairs",
        prompt='''\
def climb_stairs(n: int) -> int:
    """Return the number of ways to climb n steps taking 1 or 2 steps at a time."""
''',
        reference="""\
def climb_stairs(n: int) -> int:
    a, b = 1, 1
    for _ in range(n):
        a, b = b, a + b
    return a
""",
        naive="""\
def climb_stairs(n: int) -> int:
    if n < 2:
        return 1
    return climb_stairs(n - 1) + climb_stairs(n - 2)
""",
        tests="""\
def test_small():
    assert [climb_stairs(i) for i in range(6)] == [1, 1, 2, 3, 5, 8]

def test_large():
    assert climb_stairs(40) == 165580141
""",
        workload="""\
def workload():
    climb_stairs(21)
""",
    ),
    Problem(
        "max_subarray",
        prompt='''\
def max_subarray(values: list) -> int:
    """Return the largest sum of a non-empty contiguous slice of values."""
''',
        reference="""\
def max_subarray(values: list) -> int:
    best = cur = values[0]
    for v in values[1:]:
        cur = max(v, cur + v)
        best = max(best, cur)
    return best
""",
        naive="""\
def max_subarray(values: list) -> int:
    n = len(values)
    return max(sum(values[i:j]) for i in range(n) for j in range(i + 1, n + 1))
""",
        tests="""\
def test_small():
    assert max_subarray([-2, 1, -3, 4, -1, 2, 1, -5, 4]) == 6
    assert max_subarray([-3, -1]) == -1

def test_large():
    assert max_subarray([(-1) ** i * i for i in range(200)]) == 198
""",
        workload="""\
def workload():
    max_subarray([(-1) ** i * (i % 17) for i in range(150)])
""",
    ),
    Problem(
        "is_anagram",
        prompt='''\
def is_anagram(a: str, b: str) -> bool:
    """Return True if b is a rearrangement of the letters of a."""
''',
        reference="""\
def is_anagram(a: str, b: str) -> bool:
    from collections import Counter
    return Counter(a) == Counter(b)
""",
        naive="""\
def is_anagram(a: str, b: str) -> bool:
    rest = list(b)
    for ch in a:
        if ch not in rest:
            return False
        rest.remove(ch)
    return not rest
""",
        tests="""\
def test_small():
    assert is_anagram('listen', 'silent')
    assert not is_anagram('ab', 'abb')
    assert is_anagram('', '')

def test_large():
    assert is_anagram('ab' * 2000, 'ba' * 2000)
""",
        workload="""\
def workload():
    is_anagram('a' * 1500 + 'b' * 1500, 'b' * 1500 + 'a' * 1500)
""",
    ),
    Problem(
        "pair_count_divisible",
        prompt='''\
def pair_count_divisible(values: list, k: int) -> int:
    """Return the number of index pairs i < j with (values[i] + values[j]) % k == 0."""
''',
        reference="""\
def pair_count_divisible(values: list, k: int) -> int:
    counts = [0] * k
    total = 0
    for v in values:
        total += counts[(-v) % k]
        counts[v % k] += 1
    return total
""",
        naive="""\
def pair_count_divisible(values: list, k: int) -> int:
    n = len(values)
    return sum(1 for i in range(n) for j in range(i + 1, n) if (values[i] + values[j]) % k == 0)
""",
        tests="""\
def test_small():
    assert pair_count_divisible([1, 2, 3, 4, 5], 3) == 4
    assert pair_count_divisible([], 2) == 0

def test_large():
    assert pair_count_divisible(list(range(1000)), 10) == 49900
""",
        workload="""\
def workload():
    pair_count_divisible(list(range(800)), 7)
""",
    ),
    Problem(
        "sum_of_divisors",
        prompt='''\
def sum_of_divisors(n: int) -> int:
    """Return the sum of all positive divisors of n (n >= 1), including 1 and n."""
''',
        reference="""\
def sum_of_divisors(n: int) -> int:
    total, d = 0, 1
    while d * d <= n:
        if n % d == 0:
            total += d
            if d != n // d:
                total += n // d
        d += 1
    return total
""",
        naive="""\
def sum_of_divisors(n: int) -> int:
    return sum(d for d in range(1, n + 1) if n % d == 0)
""",
        tests="""\
def test_small():
    assert sum_of_divisors(1) == 1
    assert sum_of_divisors(12) == 28
    assert sum_of_divisors(7) == 8

def test_large():
    assert sum_of_divisors(1000000) == 2480437
""",
        workload="""\
def workload():
    sum_of_divisors(300000)
""",
    ),
    Problem(
        "longest_run",
        prompt='''\
def longest_run(items: list) -> int:
    """Return the length of the longest stretch of equal consecutive values (0 if empty)."""
''',
        reference="""\
def longest_run(items: list) -> int:
    best = cur = 0
    prev = object()
    for x in items:
        cur = cur + 1 if x == prev else 1
        prev = x
        best = max(best, cur)
    return best
""",
        naive="""\
def longest_run(items: list) -> int:
    best = 0
    for i in range(len(items)):
        j = i
        while j < len(items) and items[j] == items[i]:
            j += 1
        best = max(best, j - i)
    return best
""",
        tests="""\
def test_small():
    assert longest_run([1, 1, 2, 2, 2, 1]) == 3
    assert longest_run([]) == 0

def test_large():
    assert longest_run([7] * 3000) == 3000
""",
        workload="""\
def workload():
    longest_run([5] * 2000)
""",
    ),
    Problem(
        "join_words",
        prompt='''\
def join_words(words: list) -> str:
    """Return the words joined by single spaces."""
''',
        reference="""\
def join_words(words: list) -> str:
    return ' '.join(words)
""",
        naive="""\
def join_words(words: list) -> str:
    out = ''
    for i, w in enumerate(words):
        out = out + (' ' if i else '') + w
        out = ''.join(list(out))
    return out
""",
        tests="""\
def test_small():
    assert join_words(['a', 'b', 'c']) == 'a b c'
    assert join_words([]) == ''

def test_large():
    assert len(join_words(['ab'] * 2000)) == 5999
""",
        workload="""\
def workload():
    join_words(['word'] * 1500)
""",
    ),
    Problem(
        "binomial",
        prompt='''\
def binomial(n: int, k: int) -> int:
    """Return n choose k for 0 <= k <= n."""
''',
        reference="""\
def binomial(n: int, k: int) -> int:
    k = min(k, n - k)
    result = 1
    for i in range(k):
        result = result * (n - i) // (i + 1)
    return result
""",
        naive="""\
def binomial(n: int, k: int) -> int:
    if k == 0 or k == n:
        return 1
    return binomial(n - 1, k - 1) + binomial(n - 1, k)
""",
        tests="""\
def test_small():
    assert binomial(5, 2) == 10
    assert binomial(4, 0) == 1
    assert binomial(6, 6) == 1

def test_large():
    assert binomial(34, 17) == 2333606220
""",
        workload="""\
def workload():
    binomial(18, 9)
""",
    ),
    Problem(
        "is_palindrome",
        prompt='''\
def is_palindrome(text: str) -> bool:
    """Return True if text reads the same forwards and backwards."""
''',
        reference="""\
def is_palindrome(text: str) -> bool:
    return text == text[::-1]
""",
        naive="""\
def is_palindrome(text: str) -> bool:
    reversed_text = ""
    for ch in text:
        reversed_text = ch + reversed_text
    return text == reversed_text
""",
        tests="""\
def test_small():
    assert is_palindrome("racecar")
    assert not is_palindrome("ab")
    assert is_palindrome("")

def test_large():
    assert is_palindrome("ab" * 3000 + "a")
""",
        workload="""\
def workload():
    is_palindrome("abc" * 2000 + "cba" * 2000)
""",
    ),
    Problem(
        "sum_of_squares",
        prompt='''\
def sum_of_squares(n: int) -> int:
    """Return 1*1 + 2*2 + ... + n*n (0 for n = 0)."""
''',
        reference="""\
def sum_of_squares(n: int) -> int:
    return n * (n + 1) * (2 * n + 1) // 6
""",
        naive="""\
def sum_of_squares(n: int) -> int:
    total = 0
    for i in range(1, n + 1):
        total += i * i
    return total
""",
        tests="""\
def test_small():
    assert sum_of_squares(0) == 0
    assert sum_of_squares(3) == 14

def test_large():
    assert sum_of_squares(100000) == 333338333350000
""",
        workload="""\
def workload():
    sum_of_squares(50000)
""",
    ),
    Problem(
        "sum_list",
        prompt='''\
def sum_list(values: list) -> int:
    """Return the sum of the numbers in values."""
''',
        reference="""\
def sum_list(values: list) -> int:
    return sum(values)
""",
        naive="""\
def sum_list(values: list) -> int:
    total = 0
    for i in range(len(values)):
        total = total + values[i]
    return total
""",
        tests="""\
def test_small():
    assert sum_list([1, 2, 3]) == 6
    assert sum_list([]) == 0

def test_large():
    assert sum_list(list(range(10000))) == 49995000
""",
        workload="""\
VALUES = list(range(20000))


def workload():
    sum_list(VALUES)
""",
    ),
    Problem(
        "count_vowels",
        prompt='''\
def count_vowels(text: str) -> int:
    """Return how many characters of text are lowercase vowels (a, e, i, o, u)."""
''',
        reference="""\
def count_vowels(text: str) -> int:
    return sum(map(text.count, "aeiou"))
""",
        naive="""\
def count_vowels(text: str) -> int:
    count = 0
    for ch in text:
        if ch in ["a", "e", "i", "o", "u"]:
            count += 1
    return count
""",
        tests="""\
def test_small():
    assert count_vowels("hello world") == 3
    assert count_vowels("xyz") == 0

def test_large():
    assert count_vowels("banana" * 2000) == 6000
""",
        workload="""\
def workload():
    count_vowels("the quick brown fox " * 1000)
""",
    ),
    Problem(
        "reverse_words",
        prompt='''\
def reverse_words(text: str) -> str:
    """Return the words of text (separated by single spaces) in reverse order."""
''',
        reference="""\
def reverse_words(text: str) -> str:
    return " ".join(reversed(text.split(" ")))
""",
        naive="""\
def reverse_words(text: str) -> str:
    words = text.split(" ")
    out = ""
    for w in words:
        out = w + (" " + out if out else "")
        out = "".join(list(out))
    return out
""",
        tests="""\
def test_small():
    assert reverse_words("a b c") == "c b a"
    assert reverse_words("one") == "one"

def test_large():
    assert reverse_words(" ".join(["w"] * 2000)) == " ".join(["w"] * 2000)
""",
        workload="""\
def workload():
    reverse_words(" ".join(["word"] * 1500))
""",
    ),
    Problem(
        "max_value",
        prompt='''\
def max_value(values: list) -> int:
    """Return the largest number in the non-empty list values."""
''',
        reference="""\
def max_value(values: list) -> int:
    return max(values)
""",
        naive="""\
def max_value(values: list) -> int:
    for v in values:
        if all(v >= w for w in values):
            return v
""",
        tests="""\
def test_small():
    assert max_value([3, 9, 2]) == 9
    assert max_value([-5]) == -5

def test_large():
    assert max_value(list(range(2000))) == 1999
""",
        workload="""\
def workload():
    max_value(list(range(1500)))
""",
    ),
    Problem(
        "gcd",
        prompt='''\
def gcd(a: int, b: int) -> int:
    """Return the greatest common divisor of the positive integers a and b."""
''',
        reference="""\
def gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a
""",
        naive="""\
def gcd(a: int, b: int) -> int:
    for d in range(min(a, b), 0, -1):
        if a % d == 0 and b % d == 0:
            return d
""",
        tests="""\
def test_small():
    assert gcd(12, 18) == 6
    assert gcd(7, 5) == 1

def test_large():
    assert gcd(1000003, 2000006) == 1000003
    assert gcd(1000000, 999999) == 1
""",
        workload="""\
def workload():
    gcd(300007, 600011)
""",
    ),
    Problem(
        "contains_sorted",
        prompt='''\
def contains_sorted(values: list, x: int) -> bool:
    """Return True if x occurs in values, a list sorted in increasing order."""
''',
        reference="""\
def contains_sorted(values: list, x: int) -> bool:
    from bisect import bisect_left
    i = bisect_left(values, x)
    return i < len(values) and values[i] == x
""",
        naive="""\
def contains_sorted(values: list, x: int) -> bool:
    for v in values:
        if v == x:
            return True
    return False
""",
        tests="""\
def test_small():
    assert contains_sorted([1, 3, 5], 3)
    assert not contains_sorted([1, 3, 5], 4)
    assert not contains_sorted([], 1)

def test_large():
    assert not contains_sorted(list(range(0, 20000, 2)), 19999)
""",
        workload="""\
VALUES = list(range(0, 40000, 2))


def workload():
    for x in (39999, 39998, 1, 20001):
        contains_sorted(VALUES, x)
""",
    ),
]
