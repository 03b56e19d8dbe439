"""The codes ERPGo's middleware and handlers answer with a flat body, `{"error": "<message>", "code": "<CODE>"}`
(pkg/auth/middleware.go, internal/interfaces/http/middleware/*.go, the e-mail verification handler) — beside
the codes of its pkg/errors, which `runbooks/errors.py` lists. Read from the source, all of them (the
verification handler's INVALID_REQUEST is the documented code `runbooks/errors.py` already lists)."""

from __future__ import annotations

# code, HTTP status, meaning, common causes, resolution, next steps
RealRow = tuple[str, int, str, str, str, tuple[str, ...]]

USER = "`/erpgo user <email> <permission>` — the user's roles and whether they hold that exact permission"
JWT = "`/erpgo jwt <token>` — decode the token the client sent (expired? malformed? which roles?)"
LOGIN_TEST = "`/erpgo login-test` — does the login path itself answer?"
LOGS = "`/erpgo logs` — the API's recent 5xx, panics and failed logins"
SECURITY = "`/erpgo security` — failed logins per address and account (audit_logs), bans"
DB_CONNECT = "`/erpgo db connect` — can PostgreSQL be reached, how many connections are left"
ROLE = "`/erpgo role <name>` — a role's permissions and who holds it"

AUTH_ROWS: list[RealRow] = [
    (
        "MISSING_AUTH_HEADER",
        401,
        "Authorization header is required",
        "the client sent no `Authorization` header (a lost session, a proxy that strips it)",
        "Send `Authorization: Bearer <access token>`",
        (LOGIN_TEST,),
    ),
    (
        "INVALID_AUTH_FORMAT",
        401,
        "The Authorization header is not `Bearer <token>`",
        "a missing `Bearer ` prefix, an empty token, another scheme (Basic…)",
        "Send `Authorization: Bearer <access token>`",
        (JWT,),
    ),
    (
        "INVALID_TOKEN",
        401,
        "Invalid or expired token",
        "an expired access token, a token signed with another `JWT_SECRET`, a refresh token used as access token",
        "Refresh it with POST /api/v1/auth/refresh, or log in again",
        (JWT, LOGIN_TEST),
    ),
    (
        "NOT_AUTHENTICATED",
        401,
        "User not authenticated",
        "a route that checks roles or permissions reached without the authentication middleware's user",
        "Log in again; if it persists, the route is wired without authentication (a deployment bug)",
        (JWT, LOGS),
    ),
    (
        "INSUFFICIENT_PERMISSIONS",
        403,
        "Insufficient permissions",
        "none of the user's roles holds the exact permission (ERPGo matches it exactly: no wildcard grants)",
        "Give the user a role that holds that permission",
        (USER, ROLE),
    ),
    (
        "PERMISSION_CHECK_FAILED",
        500,
        "Failed to check permissions",
        "the permission lookup in the database failed: PostgreSQL down, slow or out of connections",
        "Check the database",
        (DB_CONNECT, LOGS),
    ),
    (
        "REQUIRED_ROLE_MISSING",
        403,
        "Required role not found",
        "the route needs a role the user does not hold",
        "Give the user that role",
        (USER, ROLE),
    ),
    (
        "ROLE_PERMISSION_MISSING",
        403,
        "Role lacks required permission",
        "the user holds the role, but the role's permissions lack the one the route needs",
        "Add the permission to the role, or use a role that holds it",
        (ROLE,),
    ),
    (
        "ROLE_CHECK_FAILED",
        500,
        "Failed to get user roles",
        "the roles lookup in the database failed",
        "Check the database",
        (DB_CONNECT, LOGS),
    ),
    (
        "ROLE_FETCH_FAILED",
        500,
        "Failed to get role details",
        "the role lookup in the database failed, or the role was deleted",
        "Check the database and the role",
        (DB_CONNECT, ROLE),
    ),
    (
        "INVALID_API_KEY",
        401,
        "Invalid API key",
        "an unknown, revoked or mistyped API key",
        "Use a valid API key",
        (LOGS,),
    ),
]

REQUEST_ROWS: list[RealRow] = [
    (
        "CSRF_TOKEN_REQUIRED",
        403,
        "CSRF token required",
        "a state-changing request without the CSRF token header",
        "Fetch a CSRF token first and send it with the request",
        (LOGS,),
    ),
    (
        "CSRF_VALIDATION_FAILED",
        403,
        "The CSRF token does not validate",
        "an expired token, a token of another session, a missing or mismatched cookie",
        "Fetch a fresh CSRF token and retry",
        (LOGS,),
    ),
    (
        "CSRF_GENERATION_FAILED",
        500,
        "The API could not make a CSRF token",
        "an internal failure of the CSRF middleware (its random source or store)",
        "Look the failure up in the API's logs",
        (LOGS,),
    ),
    (
        "ORIGIN_NOT_ALLOWED",
        403,
        "Origin not allowed",
        "a browser request from an origin missing from the API's allowed CORS origins",
        "Add the origin to the allowed origins if it is legitimate",
        (LOGS,),
    ),
    (
        "ORIGIN_BLOCKED",
        403,
        "Origin not allowed (blocked)",
        "an origin on the CORS middleware's block list",
        "Check why the origin is blocked before allowing it",
        (SECURITY,),
    ),
    (
        "UNSUPPORTED_MEDIA_TYPE",
        415,
        "Unsupported content type",
        "a body sent without `Content-Type: application/json` (or another type the route accepts)",
        "Send the body as JSON with its Content-Type",
        (LOGS,),
    ),
    (
        "REQUEST_TOO_LARGE",
        413,
        "Request body too large",
        "a body over the validation middleware's size limit",
        "Send a smaller body (paginate, upload separately)",
        (LOGS,),
    ),
    (
        "READ_BODY_ERROR",
        400,
        "Failed to read request body",
        "the client closed the connection or sent a truncated body",
        "Retry; check proxies between the client and the API",
        (LOGS,),
    ),
    (
        "INVALID_QUERY_PARAMS",
        400,
        "The query parameters do not validate",
        "a malformed or out-of-range query parameter; `details.message` names it",
        "Fix the parameter the message names",
        (LOGS,),
    ),
    (
        "RATE_LIMIT_PENALTY",
        429,
        "The client is serving a rate-limit penalty",
        "it kept sending after being rate limited; `retry_after_seconds` says how long the penalty lasts",
        "Wait for the penalty to end, then slow the client down",
        (SECURITY,),
    ),
    (
        "IP_BLOCKED",
        403,
        "The client's IP address is on the API's block list",
        "an address blocked by the security middleware (often after an attack)",
        "Check why it was blocked before unblocking",
        (SECURITY,),
    ),
    (
        "IP_NOT_ALLOWED",
        403,
        "The client's IP address is not on the allow list",
        "an allow list configured on the API that does not include this client",
        "Add the address to the allow list if it is legitimate",
        (SECURITY,),
    ),
]


def verification(code: str, status: int, meaning: str, causes: str, resolution: str) -> RealRow:
    return (code, status, meaning, causes, resolution, (LOGS,))


FAILED_SEND = "the mail sender or the database failed; the message names why"
VERIFICATION_ROWS: list[RealRow] = [
    verification("INVALID_USER_ID", 400, "Invalid user ID", "a user id that is not a UUID", "Send the user's id"),
    verification("TOKEN_REQUIRED", 400, "Token is required", "no verification token in the request", "Send it"),
    verification(
        "TOKEN_INVALID",
        400,
        "The e-mail verification token is invalid",
        "an expired, used or mistyped verification token (not a JWT)",
        "Ask for a new verification e-mail",
    ),
    verification("EMAIL_SEND_FAILED", 500, "Verification e-mail not sent", FAILED_SEND, "Check the mail settings"),
    verification("EMAIL_RESEND_FAILED", 500, "Verification e-mail not resent", FAILED_SEND, "Check the mail settings"),
    verification("VERIFICATION_FAILED", 500, "E-mail verification failed", FAILED_SEND, "Look the message up"),
    verification("STATUS_CHECK_FAILED", 500, "Verification status unknown", FAILED_SEND, "Check the database"),
    verification(
        "TOKEN_INVALIDATION_FAILED", 500, "Verification token not invalidated", FAILED_SEND, "Check the database"
    ),
    verification("CLEANUP_FAILED", 500, "Expired verification tokens not cleaned", FAILED_SEND, "Check the database"),
    verification("EMAIL_SENT", 200, "Success: verification e-mail sent", "not an error", "Nothing to do"),
    verification("EMAIL_RESENT", 200, "Success: verification e-mail resent", "not an error", "Nothing to do"),
    verification("STATUS_RETRIEVED", 200, "Success: verification status", "not an error", "Nothing to do"),
    verification("TOKEN_VALID", 200, "Success: the verification token is valid", "not an error", "Nothing to do"),
    verification("TOKEN_INVALIDATED", 200, "Success: verification token invalidated", "not an error", "Nothing to do"),
    verification("CLEANUP_SUCCESS", 200, "Success: expired tokens cleaned up", "not an error", "Nothing to do"),
]

MIDDLEWARE_ROWS = AUTH_ROWS + REQUEST_ROWS
