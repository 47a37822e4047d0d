/*
 * The control layer: the operations that change the daemon's proxies,
 * whoever asks for them (the API, a reload, the command line).
 */
#ifndef TARDY_CONTROL_H
#define TARDY_CONTROL_H

#include <stddef.h>

#include "addr.h"

struct config;
struct proxy;
struct proxy_conf;
struct tardy;

enum control_op {
	CONTROL_KEEP,	 /* left as it is */
	CONTROL_UPDATE,	 /* settings changed in place */
	CONTROL_REPLACE, /* a new proxy takes its place */
	CONTROL_ADD,
	CONTROL_REMOVE,
};

struct control_change {
	enum control_op		 op;
	const struct proxy_conf *pc;	/* what it becomes; NULL: removed */
	struct proxy		*old;	/* what it is; NULL: new */
	struct proxy		*donor; /* whose listener it takes */
	int			 fd;	/* its new listener, or -1 */
	struct addr		 bound;
	struct proxy		*result; /* once committed */
};

struct control_plan {
	struct tardy	      *tardy;
	struct control_change *changes;
	size_t		       n;
	size_t		       size;
	struct control_change *failed; /* the one that did not bind */
};

void		       control_plan_init(struct control_plan *, struct tardy *);
struct control_change *control_plan_set(struct control_plan *,
    const struct proxy_conf *, int);
void	    control_plan_remove(struct control_plan *, struct proxy *);
int	    control_plan_bind(struct control_plan *, char *, size_t);
void	    control_plan_commit(struct control_plan *);
void	    control_plan_free(struct control_plan *);
const char *control_op_name(enum control_op);

void control_proxy_conf(const struct proxy *, struct proxy_conf *);
int  control_same_listen(const struct proxy *, const struct addr *);
int  control_proxy_add(struct tardy *, const struct proxy_conf *,
     struct proxy **, char *, size_t);
int  control_proxy_set(struct tardy *, const struct proxy_conf *,
     struct proxy **, char *, size_t);
void control_proxy_remove(struct tardy *, struct proxy *);
void control_reset(struct tardy *);
void control_conf_toxics(struct proxy *, struct config *, struct config *);

#endif
