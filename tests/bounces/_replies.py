"""What receiving servers answer, per provider, with the reason and kind each answer means.

Each reply is (key, SMTP code, enhanced status or None, text, reason, kind, source). The
texts follow the providers' published error lists and the MTAs' documented messages
(named in ``source``); {addr}, {local}, {domain} and {ip} are filled in per message.
The reason and kind are labelled by hand from what the text says (reconciler/bounces/
reasons.py documents the table), never computed by the classifier.
"""
from __future__ import annotations

GMAIL = "Gmail SMTP errors and codes (Google Workspace Admin Help)"
MICROSOFT = "Microsoft Learn: Email non-delivery reports and SMTP errors in Exchange Online"
OUTLOOK = "Outlook.com postmaster: troubleshooting (error codes S3150/S3140)"
YAHOO = "Yahoo Sender Hub: SMTP error codes; Yahoo Help SLN3444"
AOL = "Yahoo Sender Hub: SMTP error codes (AOL inbound)"
ZOHO = "Zoho Mail SMTP replies (smtp.codes/zoho)"
ICLOUD = "Apple support HT204137: iCloud Mail postmaster"
RFC5321 = "RFC 5321 section 4.2 reply codes"
RFC3463 = "RFC 3463 / RFC 5248 registry of enhanced status codes"
RFC7505 = "RFC 7505 (null MX)"
POSTFIX = "Postfix documentation: postconf(5), smtpd access restrictions, local(8), pipe(8)"
EXIM = "Exim specification: appendfile quota, routers, retry rules"
DOVECOT = "Dovecot LMTP/LDA quota replies"
POSTGREY = "postgrey documentation (greylisting reply)"
SPAMHAUS = "Spamhaus DNSBL usage (Postfix reject_rbl_client reply)"
BARRACUDA = "Barracuda Reputation Block List (reply text)"
PROOFPOINT = "Proofpoint IP reputation block (ipcheck reply)"
GMX = "GMX/WEB.DE postmaster error codes"
COMCAST = "Comcast postmaster SMTP error codes"
MAILRU = "Mail.Ru postmaster help (rejection replies)"
YANDEX = "Yandex Mail postmaster help"
ORANGE = "Orange postmaster (rejection codes OFR/MSH)"
DOCOMO = "NTT docomo / NTT Communications FAQ: returned mail to docomo.ne.jp (550 Unknown user)"
AU = "au (KDDI) returned-mail wording as documented by Japanese ISPs' FAQs (asahi-net FAQ 5238)"
SOFTBANK = "SoftBank / Japanese ISP FAQs on returned mail (User unknown, over quota)"
SES = "Amazon SES developer guide: bounces and the suppression list"
CYRUS = "Cyrus IMAP LMTP quota reply"
MSSPAM = "Microsoft 365: 5.7.5xx/6xx/7xx anti-spam and tenant replies"

# key, code, status, text, reason, kind, source
REPLIES: list[tuple[str, str, str | None, str, str, str, str]] = [
    # -- Gmail / Google Workspace as receiver
    ("gmail_nouser", "550", "5.1.1", "The email account that you tried to reach does not exist. Please try "
     "double-checking the recipient's email address for typos or unnecessary spaces. For more information, "
     "go to https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-b3a1c2d4e5sor123456pgb.42 - gsmtp",
     "user-unknown", "hard", GMAIL),
    ("gmail_disabled", "550", "5.2.1", "The email account that you tried to reach is disabled. For more "
     "information, go to https://support.google.com/mail/?p=DisabledUser 5b1f17b1804b1-43d2e1sor - gsmtp",
     "suspended", "soft", GMAIL),
    ("gmail_inbox_full", "552", "5.2.2", "The recipient's inbox is out of storage space. Please direct the "
     "recipient to https://support.google.com/mail/?p=OverQuotaTemp a640c23a62f3a-ab7sor - gsmtp",
     "mailbox-full", "soft", GMAIL),
    ("gmail_over_quota", "452", "4.2.2", "The email account that you tried to reach is over quota. Please "
     "direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp d2e1a72fcca58-73sor - gsmtp",
     "mailbox-full", "soft", GMAIL),
    ("gmail_rate_user", "450", "4.2.1", "The user you are trying to contact is receiving mail at a rate that "
     "prevents additional messages from being delivered. Please resend your message at a later time. If the "
     "user is able to receive mail at that time, your message will be delivered. - gsmtp",
     "rate-limited", "blocked", GMAIL),
    ("gmail_unsolicited_rate", "421", "4.7.28", "[{ip}] Our system has detected an unusual rate of unsolicited "
     "mail originating from your IP address. To protect our users from spam, mail sent from your IP address "
     "has been temporarily rate limited. - gsmtp", "rate-limited", "blocked", GMAIL),
    ("gmail_spam", "550", "5.7.1", "[{ip}] Our system has detected that this message is likely unsolicited "
     "mail. To reduce the amount of spam sent to Gmail, this message has been blocked. For more information, "
     "go to https://support.google.com/mail/?p=UnsolicitedMessageError - gsmtp",
     "spam-detected", "blocked", GMAIL),
    ("gmail_reputation", "550", "5.7.1", "[{ip}] Our system has detected that this message is likely "
     "suspicious due to the very low reputation of the sending IP address. To best protect our users from "
     "spam, the message has been blocked. - gsmtp", "ip-blocked", "blocked", GMAIL),
    ("gmail_ptr", "550", "5.7.25", "[{ip}] The IP address sending this message does not have a PTR record "
     "setup, or the corresponding forward DNS entry does not point to the sending IP. As a policy, Gmail "
     "does not accept messages from IPs with missing PTR records. - gsmtp", "ip-blocked", "blocked", GMAIL),
    ("gmail_unauthenticated", "550", "5.7.26", "This mail has been blocked because the sender is "
     "unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM. - gsmtp",
     "auth-failure", "blocked", GMAIL),
    ("gmail_dmarc", "550", "5.7.26", "Unauthenticated email from example.com is not accepted due to domain's "
     "DMARC policy. Please contact the administrator of example.com domain if this was a legitimate mail. "
     "- gsmtp", "auth-failure", "blocked", GMAIL),
    ("gmail_size", "552", "5.3.4", "Your message exceeded Google's message size limits. For more "
     "information, go to https://support.google.com/mail/?p=MaxSizeError - gsmtp",
     "message-too-big", "soft", GMAIL),
    ("gmail_security", "552", "5.7.0", "This message was blocked because its content presents a potential "
     "security issue. For more information, go to https://support.google.com/mail/?p=BlockedMessage - gsmtp",
     "security-error", "blocked", GMAIL),
    ("gmail_policy", "550", "5.7.1", "The user or domain that you are sending to (or from) has a policy that "
     "prohibited the mail that you sent. Please contact your domain administrator for further details. "
     "- gsmtp", "policy-violation", "blocked", GMAIL),
    ("gmail_no_from", "550", "5.7.1", "Messages missing a valid address in From: header, or having no From: "
     "header, are not accepted. - gsmtp", "content-error", "blocked", GMAIL),
    ("gmail_tls", "421", "4.7.0", "TLS required for RCPT domain, closing connection. - gsmtp",
     "security-error", "blocked", GMAIL),
    # -- Microsoft 365 / Exchange Online / Outlook.com as receiver
    ("ms_recipient_not_found", "550", "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient {addr} not found "
     "by SMTP address lookup", "user-unknown", "hard", MICROSOFT),
    ("ms_recipnotfound", "550", "5.1.1", "RESOLVER.ADR.RecipNotFound; not found", "user-unknown", "hard",
     MICROSOFT),
    ("ms_dbeb", "550", "5.4.1", "Recipient address rejected: Access denied. For more information see "
     "https://aka.ms/EXOSmtpErrors [AM4PEPF00027A5C.eurprd04.prod.outlook.com]", "user-unknown", "hard",
     MICROSOFT),
    ("ms_banned_ip", "550", "5.7.606", "Access denied, banned sending IP [{ip}]. To request removal from "
     "this list please visit https://sender.office.com/ and follow the directions.", "ip-blocked", "blocked",
     MICROSOFT),
    ("ms_s3150", "550", "5.7.1", "Unfortunately, messages from [{ip}] weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list (S3150). You can also "
     "refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.", "ip-blocked", "blocked",
     OUTLOOK),
    ("ms_s3140", "550", "5.7.1", "Unfortunately, messages from [{ip}] weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list (S3140).", "ip-blocked",
     "blocked", OUTLOOK),
    ("ms_dmarc", "550", "5.7.509", "Access denied, sending domain [EXAMPLE.COM] does not pass DMARC "
     "verification and has a DMARC policy of reject.", "auth-failure", "blocked", MICROSOFT),
    ("ms_quota", "554", "5.2.2", "mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException."
     "MapiExceptionShutoffQuotaExceeded; Failed to process message due to a permanent exception",
     "mailbox-full", "soft", MICROSOFT),
    ("ms_recip_size", "550", "5.2.3", "RESOLVER.RST.RecipSizeLimit; message too large for this recipient",
     "exceed-limit", "soft", MICROSOFT),
    ("ms_size", "552", "5.3.4", "Message size exceeds fixed maximum message size", "message-too-big", "soft",
     MICROSOFT),
    ("ms_not_authorized", "550", "5.7.1", "RESOLVER.RST.NotAuthorized; not authorized", "policy-violation",
     "blocked", MICROSOFT),
    ("ms_group_auth", "550", "5.7.133", "RESOLVER.RST.SenderNotAuthenticatedForGroup; authentication required; "
     "Delivery restriction check failed because the sender was not authenticated when sending to this group",
     "policy-violation", "blocked", MICROSOFT),
    ("ms_hop_count", "554", "5.4.14", "Hop count exceeded - possible mail loop ATTR34", "network-error",
     "soft", MICROSOFT),
    ("ms_nonexistent_domain", "554", "5.4.4", "SMTPSEND.DNS.NonExistentDomain; nonexistent domain",
     "host-unknown", "hard", MICROSOFT),
    ("ms_forwarding", "550", "5.7.520", "Access denied, Your organization does not allow external forwarding. "
     "Please contact your administrator for further assistance. AS(7555)", "policy-violation", "blocked",
     MSSPAM),
    ("ms_ip_reputation_rate", "451", "4.7.650", "The mail server [{ip}] has been temporarily rate limited due "
     "to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775)",
     "rate-limited", "blocked", MICROSOFT),
    ("ms_unregistered", "550", "5.7.750", "Service unavailable. Client blocked from sending from unregistered "
     "domains.", "policy-violation", "blocked", MSSPAM),
    ("ms_bare_lf", "550", "5.6.11", "SMTPSEND.BareLinefeedsAreIllegal; message contains bare linefeeds, "
     "which cannot be sent via DATA", "content-error", "blocked", MICROSOFT),
    ("ms_anonymous", "530", "5.7.57", "Client not authenticated to send mail. Error: 535 5.7.139 "
     "Authentication unsuccessful [MAIL FROM]", "security-error", "blocked", MICROSOFT),
    # -- Yahoo / AOL as receiver
    ("yahoo_dd", "554", None, "delivery error: dd This user doesn't have a yahoo.com account ({addr}) [0] - "
     "mta4183.mail.gq1.yahoo.com", "user-unknown", "hard", YAHOO),
    ("yahoo_disabled", "554", None, "delivery error: dd Sorry your message to {addr} cannot be delivered. "
     "This mailbox is disabled (554.30). - mta4012.mail.bf1.yahoo.com", "suspended", "soft", YAHOO),
    ("yahoo_tss04", "421", "4.7.0", "[TSS04] Messages from {ip} temporarily deferred due to unexpected volume "
     "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "rate-limited",
     "blocked", YAHOO),
    ("yahoo_tss09", "553", "5.7.2", "[TSS09] All messages from {ip} will be permanently deferred; Retrying "
     "will NOT succeed. See https://postmaster.yahooinc.com/error-codes", "ip-blocked", "blocked", YAHOO),
    ("yahoo_policy", "554", "5.7.9", "Message not accepted for policy reasons. See "
     "https://postmaster.yahooinc.com/error-codes", "policy-violation", "blocked", YAHOO),
    ("yahoo_unauthenticated", "550", "5.7.9", "This mail has been blocked because the sender is "
     "unauthenticated. Yahoo requires all senders to authenticate with either SPF or DKIM.",
     "auth-failure", "blocked", YAHOO),
    ("yahoo_bl21", "553", "5.7.1", "[BL21] Connections will not be accepted from {ip}, because the ip is in "
     "Spamhaus's list; see https://postmaster.yahooinc.com/error-codes", "ip-blocked", "blocked", YAHOO),
    ("yahoo_size", "554", None, "30 Sorry, your message size exceeds 41943040 bytes.", "message-too-big",
     "soft", YAHOO),
    ("yahoo_receiving_fast", "450", None, "User is receiving mail too quickly", "rate-limited", "blocked",
     YAHOO),
    ("aol_hvu", "554", "5.7.1", "[HVU:B1] Connections not accepted from IP addresses on Spamhaus XBL; see "
     "https://postmaster.yahooinc.com/error-codes [554]", "ip-blocked", "blocked", AOL),
    ("aol_max_per_connection", "421", None, "Max message per connection reached, closing transmission channel",
     "too-many-connections", "blocked", AOL),
    # -- other mailbox providers
    ("icloud_nouser", "550", "5.1.1", "<{addr}>: user does not exist", "user-unknown", "hard", ICLOUD),
    ("icloud_policy", "554", "5.7.1", "[CS01] Message rejected due to local policy. Please visit "
     "https://support.apple.com/en-us/HT204137", "policy-violation", "blocked", ICLOUD),
    ("icloud_quota", "552", "5.2.2", "<{addr}>: user is over quota", "mailbox-full", "soft", ICLOUD),
    ("zoho_nouser", "550", "5.1.1", "<{addr}> User unknown", "user-unknown", "hard", ZOHO),
    ("zoho_dmarc", "550", "5.7.1", "Email rejected per DMARC policy for example.com", "auth-failure",
     "blocked", ZOHO),
    ("zoho_virus", "552", "5.7.1", "virus Eicar-Test-Signature detected by Zoho Mail", "security-error",
     "blocked", ZOHO),
    ("zoho_filtered", "541", "5.4.1", "Mail rejected by destination domain", "policy-violation", "blocked",
     ZOHO),
    ("zoho_restricted", "452", None, "<{addr}> Mailbox delivery restricted by policy error",
     "policy-violation", "blocked", ZOHO),
    ("gmx_unavailable", "550", None, "Requested action not taken: mailbox unavailable", "user-unknown",
     "hard", GMX),
    ("gmx_policy", "554", None, "Transaction failed Reject due to policy restrictions. For explanation visit "
     "https://postmaster.gmx.net/en/case?c=r0701&i=ip&v={ip}&r=1MzAbc-1t0XYZ", "policy-violation", "blocked",
     GMX),
    ("gmx_ptr", "550", None, "Requested action not taken: mailbox unavailable invalid DNS PTR resource "
     "record, IP={ip}", "ip-blocked", "blocked", GMX),
    ("comcast_not_customer", "550", "5.1.1", "<{addr}> Not our Customer", "user-unknown", "hard", COMCAST),
    ("comcast_rbl", "554", None, "resimta-po-12v.sys.comcast.net comcast {ip} found on one or more RBLs "
     "(spamhaus.org/SBL-XBL), see http://postmaster.comcast.net/smtp-error-codes.php#BL000010",
     "ip-blocked", "blocked", COMCAST),
    ("mailru_nouser", "550", None, "Message was not accepted -- invalid mailbox. Local mailbox {addr} is "
     "unavailable: user not found", "user-unknown", "hard", MAILRU),
    ("mailru_spam", "550", None, "spam message rejected. Please visit http://help.mail.ru/notspam-support/id "
     "or report details to abuse@corp.mail.ru. Error code: 1A2B3C4D5E6F", "spam-detected", "blocked", MAILRU),
    ("yandex_nouser", "550", "5.7.1", "No such user!", "user-unknown", "hard", YANDEX),
    ("yandex_spam", "554", "5.7.1", "[2] Message rejected under suspicion of SPAM; https://ya.cc/1IrBc "
     "1700000000-AbCdEfGh", "spam-detected", "blocked", YANDEX),
    ("orange_invalid_sender", "550", None, "mwinf5c33 ME Adresse d'expedition invalide. Invalid Sender. "
     "[MSH052]", "policy-violation", "blocked", ORANGE),
    # -- Japanese mobile carriers
    ("docomo_unknown", "550", None, "Unknown user {addr}", "user-unknown", "hard", DOCOMO),
    ("softbank_unknown", "550", "5.1.1", "<{addr}>: Recipient address rejected: User unknown", "user-unknown",
     "hard", SOFTBANK),
    ("softbank_quota", "552", "5.2.2", "<{addr}>: Mailbox full (over quota)", "mailbox-full", "soft",
     SOFTBANK),
    # -- the MTAs' own and common filters' replies
    ("postfix_unknown_local", "550", "5.1.1", "<{addr}>: Recipient address rejected: User unknown in local "
     "recipient table", "user-unknown", "hard", POSTFIX),
    ("postfix_unknown_virtual", "550", "5.1.1", "<{addr}>: Recipient address rejected: User unknown in "
     "virtual mailbox table", "user-unknown", "hard", POSTFIX),
    ("postfix_relay_denied", "554", "5.7.1", "<{addr}>: Relay access denied", "system-error", "soft",
     POSTFIX),
    ("postfix_sender_domain", "450", "4.1.8", "<news@example.com>: Sender address rejected: Domain not found",
     "policy-violation", "blocked", POSTFIX),
    ("postfix_sender_access", "554", "5.7.1", "<news@example.com>: Sender address rejected: Access denied",
     "policy-violation", "blocked", POSTFIX),
    ("postfix_client_hostname", "450", "4.7.1", "Client host rejected: cannot find your hostname, [{ip}]",
     "ip-blocked", "blocked", POSTFIX),
    ("postfix_too_much_mail", "450", "4.7.1", "Error: too much mail from {ip}", "rate-limited", "blocked",
     POSTFIX),
    ("postfix_too_many_recipients", "452", "4.5.3", "Error: too many recipients", "too-many-connections",
     "blocked", POSTFIX),
    ("postfix_too_many_connections", "421", "4.7.0", "mx.example.net Error: too many connections from {ip}",
     "too-many-connections", "blocked", POSTFIX),
    ("postfix_size", "552", "5.3.4", "Message size exceeds fixed limit", "message-too-big", "soft", POSTFIX),
    ("postfix_header_error", "554", "5.7.0", "Header error (state 18)", "content-error", "blocked", POSTFIX),
    ("postfix_nullmx", "556", "5.1.10", "<{addr}>: Recipient address rejected: Domain {domain} does not "
     "accept mail (nullMX)", "not-accept", "hard", RFC7505),
    ("rfc7505_nullmx", "556", "5.1.10", "Recipient address has null MX", "not-accept", "hard", RFC7505),
    ("rfc_has_moved", "551", "5.1.6", "User not local; please try <{local}@new.example.org>", "has-moved",
     "hard", RFC5321),
    ("rfc_mailbox_moved", "550", "5.1.6", "<{addr}>: mailbox has moved, no forwarding address", "has-moved",
     "hard", RFC3463),
    ("rfc_storage", "552", None, "Requested mail action aborted: exceeded storage allocation", "mailbox-full",
     "soft", RFC5321),
    ("rfc_length_limit", "552", "5.2.3", "Message length exceeds administrative limit", "exceed-limit",
     "soft", RFC3463),
    ("rfc_system_storage", "452", "4.3.1", "Requested action not taken: insufficient system storage",
     "system-error", "soft", RFC5321),
    ("rfc_mailbox_disabled", "550", "5.2.1", "<{addr}>: Mailbox disabled, not accepting messages",
     "suspended", "soft", RFC3463),
    ("starttls_required", "530", "5.7.0", "Must issue a STARTTLS command first", "security-error", "blocked",
     RFC3463),
    ("spamhaus_zen", "554", "5.7.1", "Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/{ip}", "ip-blocked", "blocked", SPAMHAUS),
    ("barracuda_brbl", "554", None, "Service unavailable; Client host [{ip}] blocked using Barracuda "
     "Reputation; http://www.barracudanetworks.com/reputation/?pr=1&ip={ip}", "ip-blocked", "blocked",
     BARRACUDA),
    ("proofpoint_block", "554", None, "Blocked - see https://ipcheck.proofpoint.com/?ip={ip}", "ip-blocked",
     "blocked", PROOFPOINT),
    ("poor_reputation", "550", "5.7.1", "Poor Reputation Sender. Please contact your email provider.",
     "ip-blocked", "blocked", MSSPAM),
    ("spf_fail", "550", "5.7.23", "Message rejected due to: SPF fail - not authorized. Please see "
     "http://www.open-spf.org/Why?s=mfrom;id=news@example.com;ip={ip};r={domain}", "auth-failure", "blocked",
     RFC3463),
    ("dkim_fail", "550", "5.7.20", "No passing DKIM signature found", "auth-failure", "blocked", RFC3463),
    ("greylist_postgrey", "450", "4.2.0", "<{addr}>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/{domain}.html", "greylisted", "soft", POSTGREY),
    ("greylist_generic", "451", "4.7.1", "Please try again later (greylisting in action)", "greylisted",
     "soft", POSTGREY),
    ("rate_limit_generic", "421", "4.7.0", "Message rejected: Sending rate limit exceeded. Try again later",
     "rate-limited", "blocked", RFC3463),
    ("dovecot_quota", "552", "5.2.2", "<{addr}> Quota exceeded (mailbox for user is full)", "mailbox-full",
     "soft", DOVECOT),
    ("cyrus_over_quota", "452", "4.2.2", "Over quota", "mailbox-full", "soft", CYRUS),
    ("mailbox_inactive", "550", "5.2.1", "<{addr}>: Mailbox is inactive", "suspended", "soft", RFC3463),
    ("account_suspended", "554", None, "<{addr}>: Recipient address rejected: Account is suspended",
     "suspended", "soft", RFC3463),
    ("account_expired", "550", None, "User account is expired", "suspended", "soft", RFC3463),
    ("virus_found", "554", "5.7.1", "Message rejected: virus found (Eicar-Test-Signature)", "security-error",
     "blocked", RFC3463),
    ("malformed", "554", "5.6.0", "Mail message is malformed. Not accepted.", "content-error", "blocked",
     GMAIL),
    ("temp_local_problem", "451", "4.3.0", "Temporary local problem - please try later", "system-error",
     "soft", EXIM),
    ("loops_back", "554", "5.4.6", "mail for {domain} loops back to myself", "network-error", "soft",
     POSTFIX),
    ("ses_suppressed", "550", "5.1.1", "Amazon SES has suppressed sending to this address because it has a "
     "recent history of bouncing as an invalid address. For more information about how to remove an address "
     "from the suppression list, see the Amazon SES Developer Guide", "user-unknown", "hard", SES),
]
