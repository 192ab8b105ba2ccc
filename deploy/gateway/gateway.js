// njs for the gateway (nginx.conf.tmpl loads it with js_import).
//
// Counts the X-MSISDN headers exactly as the client sent them. nginx itself picks one
// (1.22 the first, 1.23+ joins them with ", "), so a phone could put its own X-MSISDN before
// the one a carrier proxy appends and choose whom it logs in as; the gateway refuses any
// request with more than one instead.
function msisdnRepeated(r) {
    var count = 0;
    var raw = r.rawHeadersIn;
    for (var i = 0; i < raw.length; i++) {
        if (raw[i][0].toLowerCase() === 'x-msisdn') {
            count++;
        }
    }
    return count > 1 ? '1' : '';
}

export default {msisdnRepeated};
