"""Token formats by their published structure: a table, not code.

Each format is a Python regular expression whose group `keep` (a vendor's prefix, when it helps a reader
to know which credential it was) stays in front of the mask; `words` and `shape` say what any text that
holds such a token must contain, for the prefilter (`words`: case-insensitive literals; `shape`: an RE2
expression); `examples` are tokens of the format (made up, never real), each of which a test plants in a
sentence and must find masked.
"""

from __future__ import annotations

from dataclasses import dataclass

ALNUM = "A-Za-z0-9"
START = r"(?<![A-Za-z0-9_-])"  # not in the middle of a longer word or token


@dataclass(frozen=True)
class TokenFormat:
    name: str
    pattern: str
    examples: tuple[str, ...]
    words: tuple[str, ...] = ()
    shape: str = ""
    mask: str = r"\g<keep>***"


AWS_KEY_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "APKA", "AROA", "ASCA")
GITLAB_PREFIXES = ("glpat", "gldt", "glrt", "glptt", "gloas", "glcbt", "glimt", "glsoat", "glft", "glagent")

TOKEN_FORMATS: tuple[TokenFormat, ...] = (
    TokenFormat(
        "GitHub token",
        rf"(?<![{ALNUM}_])(?P<keep>gh[pousr]_)[{ALNUM}_]{{20,}}+",
        ("ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "ghs_" + "z" * 36),
        words=("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    ),
    TokenFormat(
        "GitHub fine-grained token",
        rf"(?<![{ALNUM}_])(?P<keep>github_pat_)[{ALNUM}_]{{20,}}+",
        ("github_pat_11ABCDEFG0_abcdefghijklmnopqrstuvwxyz",),
        words=("github_pat_",),
    ),
    TokenFormat(
        "GitLab token",
        rf"{START}(?P<keep>(?:{'|'.join(GITLAB_PREFIXES)})-)[{ALNUM}_-]{{16,}}+",
        ("glpat-Abc123def456Ghi789jk", "glcbt-64_abcdefghijklmnopqrstu"),
        words=tuple(prefix + "-" for prefix in GITLAB_PREFIXES),
    ),
    TokenFormat(
        "GitLab runner registration token",
        rf"(?<![{ALNUM}])(?P<keep>GR1348941)[{ALNUM}_-]{{20,}}+",
        ("GR1348941xYz123AbC456dEf789gHi",),
        words=("gr1348941",),
    ),
    TokenFormat(
        "AWS access key id",
        rf"(?<![{ALNUM}])(?P<keep>{'|'.join(AWS_KEY_PREFIXES)}|A3T[A-Z0-9])[A-Z0-9]{{16}}(?![{ALNUM}])",
        ("AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A", "A3TXIOSFODNN7EXAMPLE"),
        words=(*(p.lower() for p in AWS_KEY_PREFIXES), "a3t"),
    ),
    TokenFormat(
        "Google API key",
        rf"{START}(?P<keep>AIza)[{ALNUM}_-]{{30,}}+",
        ("AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",),
        words=("aiza",),
    ),
    TokenFormat(
        "Google OAuth refresh token",
        rf"(?<![{ALNUM}_/-])(?P<keep>1//)0[{ALNUM}_-]{{20,}}+",
        ("1//0gLm3Xq9ZtRwYp2Kd8Vn4Hs7Jc6Bf5Ae1Ui0Oy",),
        words=("1//0",),
    ),
    TokenFormat(
        "Google OAuth client secret",
        rf"{START}(?P<keep>GOCSPX-)[{ALNUM}_-]{{20,}}+",
        ("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",),
        words=("gocspx-",),
    ),
    TokenFormat(
        "Google OAuth access token",
        rf"{START}(?P<keep>ya29\.)[{ALNUM}_-]{{20,}}+",
        ("ya29.a0AfH6SMBx3Kq9Zt7Lm2Np4Rs6Tv8Wx0Yz1Ab3Cd5Ef",),
        words=("ya29.",),
    ),
    TokenFormat(
        "Slack token",
        rf"{START}(?i:xox[abposre])-[{ALNUM}-]++",
        ("xoxb-1111-2222-AbCdEfGhIjKl", "XOXP-1-2-3-abcdef0123"),
        words=("xox",),
        mask="xox*-***",
    ),
    TokenFormat(
        "Slack app token",
        rf"{START}xapp-[{ALNUM}-]++",
        ("xapp-1-A0B-123-deadbeef",),
        words=("xapp-",),
        mask="xapp-***",
    ),
    TokenFormat(
        "Slack webhook",
        r"(?P<keep>hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]++",
        ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",),
        words=("hooks.slack.com",),
    ),
    TokenFormat(
        "Stripe key",
        rf"(?<![{ALNUM}_])(?P<keep>(?:sk|rk|pk)_(?:live|test)_)[{ALNUM}]{{8,}}+",
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "rk_test_51Hx9AbCdEfGh"),
        words=("_live_", "_test_"),
    ),
    TokenFormat(
        "Stripe webhook secret",
        rf"(?<![{ALNUM}_])(?P<keep>whsec_)[{ALNUM}+/=]{{16,}}+",
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",),
        words=("whsec_",),
    ),
    TokenFormat(
        "npm token",
        rf"(?<![{ALNUM}_])(?P<keep>npm_)[{ALNUM}]{{30,}}+",
        ("npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",),
        words=("npm_",),
    ),
    TokenFormat(
        "PyPI token",
        rf"{START}(?P<keep>pypi-)[{ALNUM}_-]{{50,}}+",
        ("pypi-AgEIcHlwaS5vcmcCJDk3ZmY0YjQ5LTI1ZjktNGE4Zi1hODU5LWU3NDk3ZDYzNzU2NAACKlsz",),
        words=("pypi-",),
    ),
    TokenFormat(
        "SendGrid key",
        rf"{START}(?P<keep>SG\.)[{ALNUM}_-]{{16,}}+\.[{ALNUM}_-]{{16,}}+",
        ("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",),
        words=("sg.",),
    ),
    TokenFormat(
        "Anthropic key",
        rf"{START}(?P<keep>sk-ant-)[{ALNUM}_-]{{20,}}+",
        ("sk-ant-api03-Xy9Zk8Lm7Nq6Pr5St4Uv3Wx2Yz1Ab0Cd-EfGhIjKlMn",),
        words=("sk-ant-",),
    ),
    TokenFormat(
        "OpenAI key",
        rf"{START}(?P<keep>sk-(?:proj-|svcacct-|admin-|None-)?)(?=[{ALNUM}_-]{{0,200}}?[0-9])[{ALNUM}_-]{{20,}}+",
        ("sk-proj-Ab3De5Gh7Jk9Mn1Pq3St5Vw7Yz9Bc1Ef3", "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"),
        words=("sk-",),
    ),
    TokenFormat(
        "Twilio account SID with its auth token",
        rf"(?<![{ALNUM}])AC[a-z0-9]{{32}}(?:[:/ ]|%3[Aa])[0-9a-f]{{32}}(?![{ALNUM}])",
        ("AC0123456789abcdef0123456789abcdef:fedcba9876543210fedcba9876543210",),
        shape="AC[a-z0-9]{32}",
        mask="AC***:***",
    ),
    TokenFormat(
        "Twilio SID or API key",
        rf"(?<![{ALNUM}])(?P<keep>AC|SK)[a-z0-9]{{32}}(?![{ALNUM}])",
        ("AC0123456789abcdef0123456789abcdef", "SK0123456789abcdef0123456789abcdef"),
        shape="(?:AC|SK)[a-z0-9]{32}",
    ),
    TokenFormat(
        "Square token",
        rf"{START}(?P<keep>sq0(?:csp|atp)-)[{ALNUM}\\_-]{{22,}}+",
        ("sq0csp-0p9h7g6f5e4d3c2b1a0Z9Y8X7W6V5U4T3S2R1Q0P9",),
        words=("sq0csp-", "sq0atp-"),
    ),
    TokenFormat(
        "Mailchimp key",
        rf"(?<![{ALNUM}])[0-9a-z]{{32}}(?P<keep>-us[0-9]{{1,2}})(?![0-9])",
        ("0123456789abcdef0123456789abcdef-us12",),
        words=("-us",),
        mask=r"***\g<keep>",
    ),
    TokenFormat(
        "Telegram bot token",
        rf"(?P<keep>[0-9]{{8,10}}:)[{ALNUM}_-]{{35,}}+",
        ("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",),
        shape="[0-9]{8}:[A-Za-z0-9_-]{35}",
    ),
    TokenFormat(
        "Discord bot token",
        rf"{START}[MNO][{ALNUM}_-]{{23,25}}\.[{ALNUM}_-]{{6}}\.[{ALNUM}_-]{{27,}}+",
        ("MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs",),
        shape=r"[MNO][A-Za-z0-9_-]{23}[A-Za-z0-9_-]{0,2}\.[A-Za-z0-9_-]{6}\.",
        mask="***",
    ),
    TokenFormat(
        "Artifactory token",
        rf'(?<![^\s=:"])(?P<keep>AKC|AP[0-9A-F])[{ALNUM}]{{8,}}+(?=[\s"]|\Z)',
        ("AKCp8jQ8tJ7UpF3kV2a", "APBxyz12345678"),
        shape="(?:AKC|AP[0-9A-F])[A-Za-z0-9]{8}",
    ),
    TokenFormat(
        "SoftLayer API URL",
        r"(?P<keep>api\.softlayer\.com/soap/v3(?:\.1)?/)[a-z0-9]{64}",
        ("https://api.softlayer.com/soap/v3/" + "ab12" * 16,),
        words=("softlayer",),
    ),
    TokenFormat(
        "Bearer credential",
        r"(?i)(?<![A-Za-z0-9_-])(?P<keep>bearer)\s++[A-Za-z0-9._~+/=-]{8,}+",
        ("Bearer abcdef123456789",),
        words=("bearer",),
        mask=r"\g<keep> ***",
    ),
    TokenFormat(
        "htpasswd and crypt hash",
        r"(?P<keep>\$(?:apr1|2[abxy]?|1|5|6|y|7|argon2(?:id|i|d))\$)[./A-Za-z0-9$=,+]{8,}+",
        ("$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "$2y$05$CBYb3Ts7vV0n8nZfOb8cM.aVZdH9/8s3bA8yE0t0p5Y0cXjRyJqWa"),
        shape=r"\$(?:apr1|2[abxy]?|1|5|6|y|7|argon2(?:id|i|d))\$[./A-Za-z0-9$=,+]{8}",
    ),
    TokenFormat(
        "LDAP SHA hash",
        r"(?i)(?P<keep>\{S?SHA(?:256|512)?\})[A-Za-z0-9+/]{20,}+={0,2}",
        ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",),
        words=("{sha", "{ssha"),
    ),
)
