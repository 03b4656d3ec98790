/** An error of the OCVR client, with a machine-readable `code`. */
export class OcvrError extends Error {
    code;
    channelId;
    closeCode;
    status;
    retryAfter;
    constructor(code, message, details = {}) {
        super(message, details.cause === undefined ? undefined : { cause: details.cause });
        this.name = "OcvrError";
        this.code = code;
        if (details.channelId !== undefined)
            this.channelId = details.channelId;
        if (details.closeCode !== undefined)
            this.closeCode = details.closeCode;
        if (details.status !== undefined)
            this.status = details.status;
        if (details.retryAfter !== undefined)
            this.retryAfter = details.retryAfter;
    }
}
