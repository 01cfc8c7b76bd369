<?php
/**
 * Switchyard — WHMCS hook for the whmcs-xenforo connector.
 *
 * Install: copy this file to <whmcs>/includes/hooks/switchyard.php and set the two values
 * below (or define the constants in configuration.php, or set the environment variables).
 *
 * On AfterModuleCreate, AfterModuleChangePackage, AfterModuleSuspend, AfterModuleUnsuspend
 * and AfterModuleTerminate it POSTs one JSON document to Switchyard:
 *
 *   {"event": "AfterModuleCreate", "service_id": 42, "client_id": 9,
 *    "email": "ada@example.com", "product_id": 12, "status": "Active",
 *    "occurred_at": "2026-01-02T03:04:05.123456Z"}
 *
 * signed with Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature:
 * v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">, keyed with the base64-decoded
 * part of the whsec_ secret).
 *
 * Hooks run inside the WHMCS request (an admin clicking "Suspend", the daily cron): this
 * file never throws and gives up after 3 seconds (2 to connect). A failed send is written
 * to the WHMCS Activity Log ("Switchyard: …"); re-run the module action to send it again.
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

// The connector's route on your Switchyard host, e.g. https://hooks.example.com/hooks/whmcs.
if (!defined('SWITCHYARD_WHMCS_URL')) {
    define('SWITCHYARD_WHMCS_URL', (string) getenv('SWITCHYARD_WHMCS_URL'));
}
// The connector's Standard Webhooks secret: whsec_ followed by base64 (24–64 bytes).
if (!defined('SWITCHYARD_WHMCS_SECRET')) {
    define('SWITCHYARD_WHMCS_SECRET', (string) getenv('SWITCHYARD_WHMCS_SECRET'));
}

if (!function_exists('switchyard_whmcs_log')) {
    /** Writes to the WHMCS Activity Log (PHP's error log outside WHMCS). */
    function switchyard_whmcs_log($message)
    {
        try {
            if (function_exists('logActivity')) {
                logActivity('Switchyard: ' . $message);
            } else {
                error_log('Switchyard: ' . $message);
            }
        } catch (\Throwable $e) {
            // Logging must not break the hook either.
        }
    }

    /**
     * Now, UTC, RFC 3339 with microseconds: the connector orders the events of a service by
     * it, so two hooks run within one second keep their order.
     */
    function switchyard_whmcs_now()
    {
        // microtime() is "0.12345600 1767323045": the fraction's digits, then the seconds.
        list($fraction, $seconds) = explode(' ', microtime());
        return gmdate('Y-m-d\TH:i:s', (int) $seconds) . '.' . substr($fraction, 2, 6) . 'Z';
    }

    /** The JSON document for one hook call. */
    function switchyard_whmcs_payload($hook, $status, array $vars)
    {
        $params = (isset($vars['params']) && is_array($vars['params'])) ? $vars['params'] : [];
        $client = (isset($params['clientsdetails']) && is_array($params['clientsdetails']))
            ? $params['clientsdetails'] : [];
        return [
            'event' => $hook,
            'service_id' => (int) ($params['serviceid'] ?? 0),
            'client_id' => (int) ($params['userid'] ?? 0),
            'email' => (string) ($client['email'] ?? ''),
            'product_id' => (int) ($params['pid'] ?? 0),
            'status' => $status,
            'occurred_at' => switchyard_whmcs_now(),
        ];
    }

    /** "v1,<base64>" for the message, or null when the secret is not whsec_<base64>. */
    function switchyard_whmcs_signature($secret, $id, $timestamp, $body)
    {
        if (strpos($secret, 'whsec_') !== 0) {
            return null;
        }
        $key = base64_decode(substr($secret, 6), true);
        if ($key === false || $key === '') {
            return null;
        }
        $mac = hash_hmac('sha256', $id . '.' . $timestamp . '.' . $body, $key, true);
        return 'v1,' . base64_encode($mac);
    }

    /**
     * POSTs $body; returns [status, error]. curl (which WHMCS requires) when present,
     * PHP's HTTP stream otherwise. Redirects are not followed.
     */
    function switchyard_whmcs_post($url, array $headers, $body)
    {
        if (function_exists('curl_init')) {
            $curl = curl_init($url);
            curl_setopt_array($curl, [
                CURLOPT_POST => true,
                CURLOPT_POSTFIELDS => $body,
                CURLOPT_HTTPHEADER => $headers,
                CURLOPT_RETURNTRANSFER => true,
                CURLOPT_FOLLOWLOCATION => false,
                CURLOPT_CONNECTTIMEOUT_MS => 2000,
                CURLOPT_TIMEOUT_MS => 3000,
                CURLOPT_NOSIGNAL => true,
            ]);
            $answer = curl_exec($curl);
            $status = (int) curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
            $error = ($answer === false) ? curl_error($curl) : null;
            curl_close($curl);
            if ($error === null && ($status < 200 || $status >= 300)) {
                $error = 'HTTP ' . $status . ': ' . substr((string) $answer, 0, 200);
            }
            return [$status, $error];
        }

        $context = stream_context_create(['http' => [
            'method' => 'POST',
            'header' => implode("\r\n", $headers),
            'content' => $body,
            'timeout' => 3,
            'follow_location' => 0,
            'ignore_errors' => true,
        ]]);
        $answer = @file_get_contents($url, false, $context);
        $lines = function_exists('http_get_last_response_headers')
            ? (http_get_last_response_headers() ?? [])
            : ($http_response_header ?? []);
        $status = 0;
        if (isset($lines[0]) && preg_match('#^HTTP/\S+\s+(\d{3})#', $lines[0], $m)) {
            $status = (int) $m[1];
        }
        if ($status === 0) {
            $last = error_get_last();
            return [0, 'no answer: ' . ($last['message'] ?? 'connection failed')];
        }
        $error = ($status < 200 || $status >= 300)
            ? 'HTTP ' . $status . ': ' . substr((string) $answer, 0, 200) : null;
        return [$status, $error];
    }

    /** Builds, signs and sends one event. Never throws. */
    function switchyard_whmcs_send($hook, $status, $vars)
    {
        try {
            $url = SWITCHYARD_WHMCS_URL;
            $secret = SWITCHYARD_WHMCS_SECRET;
            if ($url === '' || $secret === '') {
                switchyard_whmcs_log("$hook not sent: set SWITCHYARD_WHMCS_URL and SWITCHYARD_WHMCS_SECRET");
                return;
            }
            $payload = switchyard_whmcs_payload($hook, $status, is_array($vars) ? $vars : []);
            $body = json_encode($payload, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
            if ($body === false) {
                switchyard_whmcs_log("$hook for service {$payload['service_id']} not sent: " . json_last_error_msg());
                return;
            }
            // Unique per hook call: Switchyard dedupes on it, so a resend of this very call
            // is ignored while a later suspend/unsuspend of the same service is not.
            $id = 'whmcs_' . $payload['service_id'] . '_' . $hook . '_' . bin2hex(random_bytes(8));
            $timestamp = (string) time();
            $signature = switchyard_whmcs_signature($secret, $id, $timestamp, $body);
            if ($signature === null) {
                switchyard_whmcs_log("$hook not sent: SWITCHYARD_WHMCS_SECRET is not whsec_ followed by base64");
                return;
            }
            list($code, $error) = switchyard_whmcs_post($url, [
                'Content-Type: application/json',
                'User-Agent: Switchyard-WHMCS-Hook/1',
                'webhook-id: ' . $id,
                'webhook-timestamp: ' . $timestamp,
                'webhook-signature: ' . $signature,
            ], $body);
            if ($error !== null) {
                switchyard_whmcs_log("$hook for service {$payload['service_id']} not delivered ($id): $error");
            }
        } catch (\Throwable $e) {
            switchyard_whmcs_log("$hook failed: " . get_class($e) . ': ' . $e->getMessage());
        }
    }
}

// Hook → the service status it reports. AfterModuleChangePackage is an upgrade or a
// downgrade of an active service; `pid` is then the new product.
foreach ([
    'AfterModuleCreate' => 'Active',
    'AfterModuleChangePackage' => 'Active',
    'AfterModuleSuspend' => 'Suspended',
    'AfterModuleUnsuspend' => 'Active',
    'AfterModuleTerminate' => 'Terminated',
] as $switchyardHook => $switchyardStatus) {
    add_hook($switchyardHook, 1, function ($vars) use ($switchyardHook, $switchyardStatus) {
        switchyard_whmcs_send($switchyardHook, $switchyardStatus, $vars);
    });
}
unset($switchyardHook, $switchyardStatus);
