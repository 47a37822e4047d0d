/*
 * What tardyctl prints for people rather than scripts: proxies and
 * toxics, from the server's JSON, as aligned text.
 */
#ifndef TARDY_CTL_PRINT_H
#define TARDY_CTL_PRINT_H

#include <jansson.h>

void	    ctl_print_proxies(json_t *);
void	    ctl_print_proxy(json_t *);
void	    ctl_print_toxics(json_t *, const char *);
const char *ctl_print_str(json_t *, const char *);

#endif
